"""Published human baseline: Geirhos et al. (2019) report a shape bias of 0.958 on average over their
10 subjects (each 0.919–0.987). Computing it from the raw trials with the same ``shape_bias`` function
the models use checks the loader and the analysis together."""

import pytest

from clipdash.data.cue_conflict import load_human_trials
from clipdash.evals.cue_conflict import human_shape_bias

pytestmark = pytest.mark.shared_data


def test_human_shape_bias_matches_published(shared_data):
    table = human_shape_bias(load_human_trials(shared_data)).set_index(["subject", "shape_class"])
    overall = table.xs("all", level="shape_class")["shape_bias"]
    subjects = overall.drop("mean")
    assert len(subjects) == 10
    assert subjects.between(0.919, 0.987).all(), subjects.to_dict()
    assert overall["mean"] == pytest.approx(0.958, abs=0.002)
    assert overall["mean"] == pytest.approx(subjects.mean())
    # one 'all' row and 16 class rows per subject and for the mean
    assert (table.groupby(level="subject").size() == 17).all()
