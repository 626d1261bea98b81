"""Live probing of one image with one model, behind the dashboard's "Probe an image" page.

``choices`` (what can be probed), ``labels`` (label sets), ``model`` (a loaded model and the prewarm
hand-over), ``scores`` (the probe's numbers); its charts are in ``clipdash.charts``. Nothing here reads the
results database except the list of checkpoint files.
"""
