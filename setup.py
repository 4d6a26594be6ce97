"""Builds the optional C accelerator ``structgen._native`` (plain C against the CPython API).

``optional=True``: if the compiler or Python's headers are missing, the build warns and the
package installs without it; ``structgen._accel`` then uses the pure-Python reference. All other
metadata lives in pyproject.toml.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "structgen._native",
            sources=["structgen/_native.c"],
            optional=True,
        )
    ]
)
