"""Readers: input files to validated rows, streaming, with file/line/field errors."""
