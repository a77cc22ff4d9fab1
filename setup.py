"""Builds ctrkit's one C extension, ``ctrkit.data._dictscan`` (the native reader of plain
CSV/TSV files). Everything else is in pyproject.toml.

The extension is optional: without a C compiler the install still succeeds, and ctrkit reads
every file with its Polars reader (same results, slower).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "ctrkit.data._dictscan",
            sources=["src/ctrkit/data/_dictscan.c"],
            extra_compile_args=["-O3"],
            optional=True,
        )
    ]
)
