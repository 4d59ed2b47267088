import streamlit as st

st.title("Visualize")
st.info("This page is being built.")
