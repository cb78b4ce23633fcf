"""Chat commands for moving contacts and groups over from other messengers (通讯录转移).

    (attach an export file to the chat)
    import            a dry-run preview of the last file you sent
    import confirm    run it: DM invitations, group rooms, placeholders
    import status     progress, or the last import's result
    import cancel     drop the preview, or stop a running import
    import accept @u  confirm that @u, who says a placeholder in your groups is them, is that person
    discoverable on|off   whether other people's imports may find you by phone number
    forget            delete everything the bridge holds about your imports

The work is done by ``bridges/contact_import.py``.
"""

from __future__ import annotations

from bridges.management import CommandContext, commands
from bridges.matrix_client import MatrixRequestError

SECTION = "Moving contacts and groups over"


@commands.command("import", help="preview what the export file you last sent me would import", section=SECTION)
async def _import(ctx: CommandContext, args: list[str]) -> None:
    await ctx.reply(await ctx.bot.imports.preview(ctx.sender, ctx.room_id))


@commands.command("import confirm", help="run the import you previewed", section=SECTION)
async def _confirm(ctx: CommandContext, args: list[str]) -> None:
    answer = await ctx.bot.imports.confirm(ctx.sender, ctx.room_id, ctx.event_id)
    if answer:
        await ctx.reply(answer)


@commands.command("import status", help="how far the import is, or how the last one ended", section=SECTION)
async def _status(ctx: CommandContext, args: list[str]) -> None:
    await ctx.reply(await ctx.bot.imports.status(ctx.sender))


@commands.command("import cancel", help="drop the previewed file, or stop a running import", section=SECTION)
async def _cancel(ctx: CommandContext, args: list[str]) -> None:
    await ctx.reply(await ctx.bot.imports.cancel(ctx.sender))


@commands.command(
    "import accept",
    args="<@user:server>",
    help="confirm that someone who says they are a placeholder in your imported groups really is that person",
    section=SECTION,
)
async def _accept(ctx: CommandContext, args: list[str]) -> None:
    if len(args) != 1:
        await ctx.reply("Send “import accept @name:server” with the account named in my message.")
        return
    try:
        text = await ctx.bot.imports.accept_claim(ctx.sender, args[0])
    except MatrixRequestError as e:
        text = f"That didn't work ({e.error or e.errcode}); please try again in a minute."
    await ctx.reply(text)


@commands.command(
    "discoverable",
    args="[on | off]",
    help="whether people who import your phone number may find and invite you (off by default)",
    section=SECTION,
)
async def _discoverable(ctx: CommandContext, args: list[str]) -> None:
    word = args[0].lower() if args else ""
    if word not in ("", "on", "off"):
        await ctx.reply("Send “discoverable on” or “discoverable off”.")
        return
    try:
        text = await ctx.bot.imports.set_discoverable(ctx.sender, None if not word else word == "on")
    except MatrixRequestError as e:
        text = f"That didn't work ({e.error or e.errcode}); please try again in a minute."
    await ctx.reply(text)


@commands.command("forget", help="delete everything I hold about your imports", section=SECTION)
async def _forget(ctx: CommandContext, args: list[str]) -> None:
    await ctx.reply(await ctx.bot.imports.forget(ctx.sender))
