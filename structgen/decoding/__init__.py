"""Decode-loop helpers: dead-end recovery (``recovery``) over refuted prefixes (``refuted``)."""
