"""What every adapter shares: engine arguments as a server's flags."""

from __future__ import annotations

from llenergymeasure.backends.base import cli_flags


def test_engine_arguments_become_the_servers_flags():
    flags = cli_flags(
        {
            "model": "m",
            "max_num_seqs": 8,
            "enforce_eager": True,
            "enable_prefix_caching": False,
            "quantization": None,
        },
        skip=("model",),
    )
    assert flags == ["--max-num-seqs", "8", "--enforce-eager", "--no-enable-prefix-caching"]
