"""Ray hosting: ModelHost actors (one engine each) and the pool that routes calls to them.

This is the only package that imports ``ray`` (with the CLI reaching it lazily).
"""
