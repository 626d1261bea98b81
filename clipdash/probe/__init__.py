"""Live probing of one image with one model, behind the dashboard's "Probe an image" page.

``choices`` (what can be probed), ``labels`` (label sets), ``model`` (a loaded model and the prewarm
hand-over), ``scores`` (the probe's numbers), ``classifier`` (the same for an ImageNet-1k classifier
baseline: its top-5 and 1000 → 16 decision); its charts are in ``clipdash.charts``. Nothing here reads the
results database except the list of checkpoint files.
"""
