"""What the pages draw: one module per page, figures and text built from the library's results.

Views return plain objects (plotly figures, uint8 arrays, DOT strings, pandas frames, sentences); the pages in
``app_pages/`` place them. No streamlit here (a test imports every cnnviz module and checks), so a notebook or
the CLI can draw the same pictures. This package imports nothing itself: ``import cnnviz.views.training`` loads
the Training page's views only.
"""
