"""Differential testing of scopeloop against Trio (issue 14).

``model`` describes small structured-concurrency programs and generates them with
hypothesis; ``interp`` runs one program on an API (``apis.TrioAPI`` or
``apis.ScopeloopAPI``) and returns what every task observed; ``compare`` runs a
program on Trio under several scheduler seeds, keeps what Trio guarantees (the
observations that are the same under every seed) and compares scopeloop's with it.
"""
