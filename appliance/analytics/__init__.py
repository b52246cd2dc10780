"""Audience analytics per broadcast and channel (issue 14 §3, docs/analytics.md).

:mod:`.ua` classifies User-Agents, :mod:`.tracker` turns requests into sessions and
aggregates in memory, :mod:`.service` flushes the aggregates through the Store and answers
the admin API. No address or User-Agent is ever stored.
"""
