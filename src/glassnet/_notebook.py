"""Progress in a Jupyter notebook: one output that updates in place.

in_notebook() says whether the code runs in a Jupyter kernel (IPython is looked
up in sys.modules, never imported). notebook_progress(total, initial) opens the
display fit's ProgressBar draws into there:

- tqdm's notebook widget (the epoch, a bar, the metrics and the times) when
  ipywidgets can be imported;
- else one text line, rewritten at most twice a second, and no warning (tqdm's
  own "IProgress not found" is never reached).

Either way the cell gets one output, and close(line) leaves the final epoch's
line as that output's text, so a saved notebook shown where widgets do not
render (GitHub, nbviewer, nbconvert) reads the end of the run, not its start.
tqdm, ipywidgets and IPython are imported only when a display opens, so
`import glassnet` stays light.
"""

import sys
import time

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def in_notebook() -> bool:
    """True inside a Jupyter kernel (Jupyter, VS Code, Colab: every shell built
    on ipykernel's ZMQInteractiveShell), whose stderr is no terminal but whose
    front end can show one updating display."""
    ipython = sys.modules.get("IPython")  # never imported here: only looked up
    shell = ipython.get_ipython() if ipython is not None else None
    return any(c.__name__ == "ZMQInteractiveShell" for c in type(shell).__mro__)


class NotebookLine:
    """One text output, rewritten in place (IPython's display handle) at most
    every `interval` seconds, and once more by close."""

    def __init__(self, total: int, initial: int = 0, interval: float = 0.5) -> None:
        from IPython.display import display  # a kernel has IPython

        self.interval, self.last = interval, 0.0
        self.handle = display(
            {"text/plain": f"epoch {initial}/{total}"}, raw=True, display_id=True
        )

    def show(self, n: int, line: str, metrics: str) -> None:
        """n epochs done; line: the whole progress line; metrics: its metrics."""
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.handle.update({"text/plain": line}, raw=True)
            self.last = now

    def close(self, line: str) -> None:
        """Leaves `line` (the last epoch's) as the output."""
        self.handle.update({"text/plain": line}, raw=True)


class NotebookWidget:
    """tqdm's notebook widget, "epoch n/N [bar] metrics elapsed<remaining",
    redrawn at most every `interval` seconds; close draws the final epoch,
    leaves the bar green (an early stop is no failure) and makes the final line
    the text that front ends without widgets show."""

    def __init__(self, total: int, initial: int = 0, interval: float = 0.2) -> None:
        from IPython.display import display
        from tqdm.notebook import tqdm  # raises ImportError when it has no widgets

        self.bar = tqdm(
            total=total,
            initial=initial,
            unit="epoch",
            leave=True,  # the widget stays, showing the final metrics
            mininterval=interval,
            # tqdm.notebook draws {bar} as the widget's bar, the rest as text
            bar_format="epoch {n_fmt}/{total_fmt} {bar} {desc}  {elapsed}<{remaining}",
            display=False,  # shown below, through a handle that close updates
        )
        self.handle = display(
            self._bundle(f"epoch {initial}/{total}"), raw=True, display_id=True
        )

    def show(self, n: int, line: str, metrics: str) -> None:
        """n epochs done; line: the whole progress line; metrics: its metrics."""
        self.bar.set_description_str(metrics, refresh=False)
        self.bar.update(n - self.bar.n)

    def close(self, line: str) -> None:
        """Draws the final state and leaves `line` as the output's plain text."""
        self.bar.close()  # leave=True: redraws the last epoch
        self.bar.container.children[1].bar_style = "success"  # not "danger"
        self.handle.update(self._bundle(line), raw=True)

    def _bundle(self, text: str) -> dict:
        """The widget's view (for front ends with widgets) and `text` (the
        rest); built here, the same for ipywidgets 7 and 8."""
        view = {"version_major": 2, "version_minor": 0}
        return {
            WIDGET_VIEW: {**view, "model_id": self.bar.container.model_id},
            "text/plain": text,
        }


def notebook_progress(total: int, initial: int = 0) -> NotebookWidget | NotebookLine:
    """The widget when ipywidgets can be imported (and tqdm can build its
    widget), else the text line; call only when in_notebook()."""
    try:
        import ipywidgets  # noqa: F401  tqdm.notebook needs it; import it first

        return NotebookWidget(total, initial)
    except ImportError:  # no ipywidgets, or one too old for tqdm's widget
        return NotebookLine(total, initial)
