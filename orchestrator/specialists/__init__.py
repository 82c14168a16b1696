"""Asking a specialist: one way, whether its engine runs in a Ray host or in this process.

``asking.ask_through`` builds the request, sends it through a ``generate`` the caller supplies,
records the GenAI metrics and checks the answer; ``asking.Asker`` is the base of both askers,
which say only how to generate; ``traced.TracedEngine`` wraps an engine with the
``chat {model}`` spans; ``local.LocalAsker`` runs engines in-process (tests above the engine, and
measuring Cadre's own cost), as ``hosting.pool.HostPool`` runs them in Ray actors.
"""
