"""Train -> load -> plot in a few lines (docs/notebook.md explains each step; tests/test_notebook.py runs it).

    python examples/train_load_plot.py [figure.html]     # learnmech installed (pip install -e .)
    python -m examples.train_load_plot [figure.html]     # or from the repository root, without installing

Without a file name the figure opens in a browser; in Jupyter, a cell ending in `figure` draws it.
"""

import sys

import learnmech_core as lm
from learnmech_core.plots.runs import sharpness_figure
from learnmech_core.store import RunStore

store = RunStore()  # LEARNMECH_HOME, default ~/.cache/learnmech
base = lm.RunSpec(model=lm.ModelSpec(width=16, depth=1), data=lm.DataSpec(name="moons", n_train=128, n_test=64),
                  optim=lm.OptimSpec(name="gd", steps=200), probes=lm.ProbeSpec(sharpness_every=10))
for lr in (0.1, 0.4):
    lm.get_or_train(store, base.replace(**{"optim.lr": lr}), tags=["example"])  # trained once, then read back

table = lm.load_runs(source="store", tag="example")  # one row per run and step; spec fields are columns
print(table.groupby("optim.lr")[["loss", "sharpness"]].last())

runs = [store.get(key) for key in table["key"].unique()]
figure = sharpness_figure(runs)  # a plotly go.Figure: each run's sharpness and its 2/eta line
if len(sys.argv) > 1:
    figure.write_html(sys.argv[1])
else:
    figure.show()
