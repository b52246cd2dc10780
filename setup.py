"""Build of the optional C accelerator (everything else is in pyproject.toml).

``media/rtmp/_chunks.c`` is the RTMP chunk reader's hot path in C. It is optional: where no C
compiler or Python headers are present the build warns and Hearth uses the same reader in
Python (media/rtmp/chunk.py ``message_run_reader``), which tests hold to the same output.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("media.rtmp._chunks", ["media/rtmp/_chunks.c"], optional=True,
                             extra_compile_args=["-O2", "-Wall", "-Wextra",
                                                 "-Wno-unused-parameter",
                                                 "-Wno-missing-field-initializers"])])
