"""The Wangxin bridge: an application service on Twisted + treq.

Layers, outside in: ``appservice`` (the HTTP surface Synapse calls) -> ``inbox`` (durable,
ordered event processing) -> ``management`` (the bridge bot's commands) -> ``store`` (all SQL).
``matrix_client`` is how the bridge talks back to the homeserver.
"""
