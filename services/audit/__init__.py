"""`twinaid audit`: replay, verify, compare, trace and export the history of every service.

A composition root beside the services (it knows all three); it trusts none of their read
models, only the sealed, hash-chained logs it reads from their feeds or from Kafka.
"""
