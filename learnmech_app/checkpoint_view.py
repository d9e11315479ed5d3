"""Analyses for the 'Your own model' page: an uploaded safetensors checkpoint, or a stored run's final weights.

Uploads get the same size check as data uploads (`datasets.check_size`: the profile's cap, the size
named in the message), then `checkpoint_spectra.read_safetensors` (format, never a pickle). One
spectrum is limited to the profile's largest width. Results are cached by the file's content.
"""

from __future__ import annotations

import hashlib

import streamlit as st
import torch

from learnmech_core.checkpoint_spectra import analyse_checkpoint, read_safetensors
from learnmech_core.config import current_caps

from . import resources
from .datasets import check_size


@st.cache_data(show_spinner=False, max_entries=8, hash_funcs={bytes: lambda b: hashlib.sha256(b).hexdigest()})
def analyse_upload(payload: bytes, name: str, seed: int = 0) -> tuple:
    """(table, spectra by layer, skipped) of an uploaded file; ValueError with the reason when it is refused."""
    check_size(payload, name)
    tensors = read_safetensors(payload, name)
    return analyse_checkpoint(tensors, seed=seed, max_dim=current_caps().max_width)


@st.cache_data(show_spinner=False, max_entries=8)
def analyse_run(key: str, seed: int = 0) -> tuple:
    """The same analysis of a stored run's final weights."""
    run, _ = resources.load_run(key)
    if run is None or not run.weights:
        raise ValueError(f"run {key} kept no final weights")
    tensors = {k: torch.from_numpy(v) for k, v in run.weights.items()}
    return analyse_checkpoint(tensors, seed=seed, max_dim=current_caps().max_width)
