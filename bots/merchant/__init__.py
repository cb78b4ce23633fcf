"""The merchant bot: merchants DM it to publish to their circle (商家圈).

Encryption: the bot runs matrix-nio without libolm and publishes no device keys. Element
creates a DM encrypted only when the other side has device keys, so a DM with this bot stays
plain, which also keeps product posts readable by the server's quota checks. If a client
encrypts anyway, the bot says it cannot read the message instead of staying silent.
"""
