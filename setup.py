"""Builds ctrkit's three C extensions. Everything else is in pyproject.toml.

* ``ctrkit.data._dictscan``: the native reader of plain CSV/TSV files;
* ``ctrkit.nn._fieldattn``: the small batched products of attention over fields;
* ``ctrkit.train._rowsparse``: the row-sparse embedding update (coalescing, Adam).

All are optional: without a C compiler the install still succeeds, and ctrkit reads every file
with its Polars reader, computes attention with PyTorch's products and updates embedding rows
with PyTorch's ops (same results up to float rounding, slower).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "ctrkit.data._dictscan",
            sources=["src/ctrkit/data/_dictscan.c"],
            extra_compile_args=["-O3"],
            optional=True,
        ),
        Extension(
            "ctrkit.nn._fieldattn",
            sources=["src/ctrkit/nn/_fieldattn.c"],
            extra_compile_args=["-O3"],
            optional=True,
        ),
        Extension(
            "ctrkit.train._rowsparse",
            sources=["src/ctrkit/train/_rowsparse.c"],
            # sqrtf without errno, so the update loop is vectorised; no other math is relaxed.
            extra_compile_args=["-O3", "-fno-math-errno"],
            optional=True,
        ),
    ]
)
