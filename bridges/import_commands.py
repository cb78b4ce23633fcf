"""Chat commands for moving contacts and groups over from other messengers (通讯录转移).

    (attach an export file to the chat)
    import            a dry-run preview of the last file you sent
    import confirm    run it: DM invitations, group rooms, placeholders
    import status     progress, or the last import's result
    import cancel     drop the preview, or stop a running import
    import accept @u  confirm that @u, who says a placeholder in your groups is them, is that person
    discoverable on|off   whether other people's imports may find you by phone number
    forget            delete everything the bridge holds about your imports

The work is done by ``bridges/contact_import/``; the handlers get it as ``ctx.services``
(``ContactImports`` says what they use of it). A refused request is answered by the bot's
dispatcher (``bridges/management.py``).
"""

from __future__ import annotations

from typing import Protocol

from wangxin_common.commands import CommandContext, CommandGroup


class ContactImports(Protocol):
    async def preview(self, user_id: str, room_id: str) -> str: ...
    async def confirm(self, user_id: str, room_id: str, command_event_id: str) -> str | None: ...
    async def status(self, user_id: str) -> str: ...
    async def cancel(self, user_id: str) -> str: ...
    async def accept_claim(self, importer: str, claimant: str) -> str: ...
    async def set_discoverable(self, user_id: str, on: bool | None) -> str: ...
    async def forget(self, user_id: str) -> str: ...


Context = CommandContext[ContactImports]
COMMANDS: CommandGroup[ContactImports] = CommandGroup("Moving contacts and groups over")


@COMMANDS.command("import", help="preview what the export file you last sent me would import")
async def _import(ctx: Context, args: list[str]) -> None:
    await ctx.reply(await ctx.services.preview(ctx.sender, ctx.room_id))


@COMMANDS.command("import confirm", help="run the import you previewed")
async def _confirm(ctx: Context, args: list[str]) -> None:
    answer = await ctx.services.confirm(ctx.sender, ctx.room_id, ctx.event_id)
    if answer:
        await ctx.reply(answer)


@COMMANDS.command("import status", help="how far the import is, or how the last one ended")
async def _status(ctx: Context, args: list[str]) -> None:
    await ctx.reply(await ctx.services.status(ctx.sender))


@COMMANDS.command("import cancel", help="drop the previewed file, or stop a running import")
async def _cancel(ctx: Context, args: list[str]) -> None:
    await ctx.reply(await ctx.services.cancel(ctx.sender))


@COMMANDS.command(
    "import accept",
    args="<@user:server>",
    help="confirm that someone who says they are a placeholder in your imported groups really is that person",
)
async def _accept(ctx: Context, args: list[str]) -> None:
    if len(args) != 1:
        await ctx.reply("Send “import accept @name:server” with the account named in my message.")
        return
    await ctx.reply(await ctx.services.accept_claim(ctx.sender, args[0]))


@COMMANDS.command(
    "discoverable",
    args="[on | off]",
    help="whether people who import your phone number may find and invite you (off by default)",
)
async def _discoverable(ctx: Context, args: list[str]) -> None:
    word = args[0].lower() if args else ""
    if word not in ("", "on", "off"):
        await ctx.reply("Send “discoverable on” or “discoverable off”.")
        return
    await ctx.reply(await ctx.services.set_discoverable(ctx.sender, None if not word else word == "on"))


@COMMANDS.command("forget", help="delete everything I hold about your imports")
async def _forget(ctx: Context, args: list[str]) -> None:
    await ctx.reply(await ctx.services.forget(ctx.sender))
