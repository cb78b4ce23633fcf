"""The parcels bot (快递): a person asks it, in their Parcels room or a DM, where their parcels
are (``track``). It logs in as the parcels module's ``bot_user_id``, the account that writes the
Parcels rooms' cards, and reads the sender's parcels from the module with the modules' service
secret (docs/parcels.md, "The parcels bot")."""
