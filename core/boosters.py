"""Predicting with a fitted XGBoost booster through its C API, for few rows.

``Booster.inplace_predict`` costs about 0.15 ms per call in Python before
XGBoost starts predicting (it probes the input for pandas, cuDF, Arrow and
Polars types and builds a class per call to wrap the output), as much as
the prediction itself for one application on a model of a few thousand
trees. The server scores one application per call, so that overhead would
be half its latency.

:class:`DenseBoosterPredictor` calls the same C function that
``inplace_predict`` ends in, ``XGBoosterPredictFromDense`` (a documented
entry of XGBoost's C API), with a native float64 matrix described by the
NumPy array interface: for such a matrix (what the encoder makes) its
results are the very numbers ``inplace_predict`` returns. Other inputs are
converted to one first, so a big-endian matrix is read correctly, where
``inplace_predict`` 3.4 misreads its bytes. It needs nothing private of the
Python package: the library is the one ``xgboost.libpath`` names, which the
package itself has loaded, and the booster's handle is its public ``handle``
attribute.
"""

from __future__ import annotations

import ctypes
import json
import logging
from typing import Any

import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)

# Normal prediction (the objective's transform applied: a probability for
# binary:logistic), every tree, no training-time dropout.
_PREDICT_CONFIG = json.dumps(
    {
        "type": 0,
        "training": False,
        "iteration_begin": 0,
        "iteration_end": 0,
        "strict_shape": False,
        "missing": float("nan"),
        "cache_id": 0,
    }
).encode()


def _load_library() -> Any:
    from xgboost.libpath import find_lib_path

    library = ctypes.CDLL(find_lib_path()[0])
    function = library.XGBoosterPredictFromDense
    function.restype = ctypes.c_int
    function.argtypes = [
        ctypes.c_void_p,  # booster handle
        ctypes.c_char_p,  # array interface of the input
        ctypes.c_char_p,  # prediction config
        ctypes.c_void_p,  # proxy DMatrix (none)
        ctypes.POINTER(ctypes.POINTER(ctypes.c_uint64)),  # output shape
        ctypes.POINTER(ctypes.c_uint64),  # output dimension
        ctypes.POINTER(ctypes.POINTER(ctypes.c_float)),  # output values
    ]
    library.XGBGetLastError.restype = ctypes.c_char_p
    return library


class DenseBoosterPredictor:
    """P(class 1) of a binary XGBoost booster for dense float64 rows.

    Calls from several threads are safe: XGBoost keeps the output buffer per
    thread, and each call copies it out before returning.
    """

    def __init__(self, booster: Any) -> None:
        self._library = _load_library()
        self._booster = booster  # keeps the handle alive
        self._handle = booster.handle

    def predict(self, rows: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Return the booster's prediction for each row of a 2-D float64 matrix."""
        rows = np.ascontiguousarray(rows, dtype=np.float64)
        if rows.ndim != 2:
            raise ValueError(f"rows must be a 2-D matrix, got {rows.ndim} dimension(s)")
        if rows.shape[0] == 0:
            return np.empty(0, dtype=np.float64)
        # The NumPy array interface, as JSON: a C-contiguous float64 matrix.
        interface = (
            f'{{"data": [{rows.ctypes.data}, true], "shape": [{rows.shape[0]}, {rows.shape[1]}], '
            '"typestr": "<f8", "strides": null, "version": 3}'
        ).encode()
        shape = ctypes.POINTER(ctypes.c_uint64)()
        dimension = ctypes.c_uint64()
        values = ctypes.POINTER(ctypes.c_float)()
        status = self._library.XGBoosterPredictFromDense(
            self._handle,
            interface,
            _PREDICT_CONFIG,
            None,
            ctypes.byref(shape),
            ctypes.byref(dimension),
            ctypes.byref(values),
        )
        if status != 0:
            message = self._library.XGBGetLastError().decode(errors="replace")
            raise RuntimeError(f"XGBoost could not predict: {message}")
        count = int(shape[0])
        if dimension.value != 1 or count != rows.shape[0]:
            count = int(np.prod([shape[axis] for axis in range(dimension.value)]))
            raise ValueError(
                f"the booster gave {count} values for {rows.shape[0]} rows: "
                "only binary models with one output are supported"
            )
        # Copied out: XGBoost reuses the buffer on this thread's next call.
        return np.ctypeslib.as_array(values, shape=(count,)).astype(np.float64)


def dense_predictor(booster: Any) -> DenseBoosterPredictor | None:
    """Return a C-API predictor for ``booster``, or None where it cannot be set up.

    None means the caller uses ``inplace_predict``: the same numbers, slower.
    """
    try:
        return DenseBoosterPredictor(booster)
    except Exception as error:  # whatever failed, inplace_predict still gives the right numbers
        logger.warning(
            "XGBoost's C API is not usable (%s: %s); predicting through inplace_predict.",
            type(error).__name__,
            error,
        )
        return None
