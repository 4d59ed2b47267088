"""Per-layer tables of CNNs: shapes, parameters, activation memory, MACs, connections, receptive fields.

``layer_table(model_or_arch, input_size, dtype)`` is the entry point (:mod:`cnnviz.summary.table`; see
:mod:`cnnviz.summary.columns` for every column's definition, :mod:`cnnviz.summary.rows` for the rows and the
table, :mod:`cnnviz.summary.builder` for how it is built, :mod:`cnnviz.summary.trace` for the receptive-field
conventions, and :mod:`cnnviz.summary.notes` for figures that popular write-ups get wrong).

A *layer* is a named module of the model (a dotted path) and its output, containers included, here and in
:mod:`cnnviz.viz` alike: ``LayerTable.outputs`` has every layer's shape and receptive field; the table's
*rows* are the layers it counts (leaves, and modules with weights of their own).
"""

from cnnviz.summary.columns import MACS_NOTE
from cnnviz.summary.notes import KNOWN_WRITEUP_ERRORS, WriteupError, cs231n_memory, writeup_errors
from cnnviz.summary.params import ParamCount, param_count
from cnnviz.summary.rows import LayerRow, LayerTable, dtype_size
from cnnviz.summary.table import input_region, layer_table, parameter_count, receptive_fields
from cnnviz.summary.trace import Geometry, LayerOutput
from cnnviz.summary.units import human, human_bytes, percent

__all__ = [
    "KNOWN_WRITEUP_ERRORS",
    "MACS_NOTE",
    "ParamCount",
    "Geometry",
    "LayerOutput",
    "LayerRow",
    "LayerTable",
    "WriteupError",
    "cs231n_memory",
    "dtype_size",
    "human",
    "human_bytes",
    "input_region",
    "layer_table",
    "param_count",
    "percent",
    "parameter_count",
    "receptive_fields",
    "writeup_errors",
]
