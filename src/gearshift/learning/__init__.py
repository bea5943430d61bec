"""The learning loop: judged samples of the router's own traffic and application feedback become
labelled rows; ``gearshift train --from-ledger`` fits a candidate router on them, ``gearshift
eval --candidate`` compares it with the current one on held-out labels, and ``gearshift promote``
makes every replica switch to it without a restart (docs/learning.md).

Nothing here runs on a request's path: the sampler takes finished answers off a bounded queue,
after the client has them.
"""
