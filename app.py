"""clipdash dashboard: ``streamlit run app.py``. The frame and router; each page lives in pages/."""

import streamlit as st

from pages.common import FRAMED, frame, prewarm_imports

navigation = st.navigation(
    [
        st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
        st.Page("pages/curves.py", title="Curves", icon=":material/show_chart:"),
        st.Page("pages/compare.py", title="Compare", icon=":material/scatter_plot:"),
        st.Page("pages/cue_conflict.py", title="Cue-conflict", icon=":material/texture:"),
        st.Page("pages/entropy.py", title="Entropy", icon=":material/equalizer:"),
        st.Page("pages/temperature.py", title="Temperature", icon=":material/thermostat:"),
        st.Page("pages/calibration.py", title="Calibration & OOD", icon=":material/target:"),
        st.Page("pages/probe.py", title="Probe an image", icon=":material/image_search:"),
    ]
)
frame()
prewarm_imports()
st.session_state[FRAMED] = True
try:
    navigation.run()
finally:
    st.session_state[FRAMED] = False
