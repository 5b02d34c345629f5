from __future__ import annotations


class ModuleDocFragment:
    """The HAProxy Runtime API address the splitter modules (splitter_weight, splitter_hold) talk to."""

    DOCUMENTATION = r"""
options:
  runtime_api:
    description: Path of HAProxy's admin stats socket, or C(ipv4@HOST:PORT) / C(HOST:PORT) for a TCP one.
    type: str
    required: true
"""
