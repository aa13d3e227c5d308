"""Serving mode: the backend's own OpenAI-compatible server in the container, an open-loop load
generator on loopback, the steady state chosen by a stated rule, energy over exactly it."""
