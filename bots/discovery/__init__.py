"""The discovery bot: people on any Matrix client (Element) use discovery by chatting with it
(people nearby, shake, drift bottles, chat requests, blocks and reports; docs/discovery.md).

It acts for the person who sent each command through the discovery module's service secret,
so a command has exactly the effect of the same HTTP call, limits included. It never appears in
discovery itself (the module's ``service_accounts`` names it).

Encryption: like every Wangxin bot it runs matrix-nio without libolm and publishes no device
keys, so Element makes a DM with it unencrypted; if a client encrypts anyway, the bot says it
cannot read the chat instead of staying silent.
"""
