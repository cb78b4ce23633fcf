"""Wangxin's matrix-nio bots. Each bot is a few small files: config, storage, routing, commands."""
