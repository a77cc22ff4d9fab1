"""Builds ctrkit's two C extensions. Everything else is in pyproject.toml.

* ``ctrkit.data._dictscan``: the native reader of plain CSV/TSV files;
* ``ctrkit.nn._fieldattn``: the small batched products of attention over fields.

Both are optional: without a C compiler the install still succeeds, and ctrkit reads every file
with its Polars reader and computes attention with PyTorch's products (same results, slower).
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
    ]
)
