"""The benchmark harness: each reference service against its limit and its peers.

nox -s bench -- <kind> [--device cpu|gpu]

A suite (one per project kind, in `benchmarks/<suite>/` as its kind.yml's `benchmark`
says) names its contenders, the processes each needs, the requests they all get and the
targets to check; the harness starts them, drives them in interleaved order with a
closed-loop load generator and writes results/<kind>/<device>/{results.json,results.md,
chart.png}.
"""
