"""The zoo: one model per family trained on Tiny ImageNet under one stated recipe, and the comparison.

``recipe``  the members (which network stands for each family, its optimizer and why) and the shared recipe
``driver``  calibrate, plan the epochs for a time budget, run the members' training runs K at a time, resume
``results`` one JSON file per member (history, confusion, timing, device), import into checkpoints/
``report``  docs/zoo.md: the table beside the published numbers, and the plots

This package imports no streamlit, captum or plotly: it runs on a GPU machine that has none of them.
"""

from cnnviz.zoo.recipe import ALL_FAMILIES, CORE_FAMILIES, MEMBERS, Member, Recipe, config_for, member

__all__ = ["ALL_FAMILIES", "CORE_FAMILIES", "MEMBERS", "Member", "Recipe", "config_for", "member"]
