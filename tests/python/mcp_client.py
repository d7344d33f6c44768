"""The official Python MCP client against Ophion: lists the tools and
calls two of them, over stdio (`ophion mcp`) or streamable HTTP
(`/api/v1/mcp`). Prints one JSON object: the tool names and each call's
result, or the error that stopped the session.

Usage: mcp_client.py stdio OPHION_BINARY SERVER_URL TOKEN
       mcp_client.py http SERVER_URL TOKEN
"""
import asyncio, json, os, sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client

CALLS = [
    ("service_red", {"service": "checkout", "from": "now-1h"}),
    ("run_sql", {"sql": "DROP TABLE spans"}),
    ("run_sql", {"sql": "SELECT count(*) AS n FROM spans"}),
]


async def session_work(read, write):
    async with ClientSession(read, write) as session:
        await session.initialize()
        listed = await session.list_tools()
        out = {"tools": sorted(t.name for t in listed.tools), "calls": []}
        for name, args in CALLS:
            r = await session.call_tool(name, args)
            text = "".join(getattr(c, "text", "") for c in r.content)
            # The SDK's field names changed across versions.
            is_error = getattr(r, "is_error", getattr(r, "isError", None))
            structured = getattr(r, "structured_content", getattr(r, "structuredContent", None))
            out["calls"].append({"tool": name, "is_error": bool(is_error), "text": text,
                                 "structured": structured})
        return out


async def main():
    mode = sys.argv[1]
    try:
        if mode == "stdio":
            binary, server, token = sys.argv[2:5]
            env = dict(os.environ, OPHION_SERVER=server, OPHION_TOKEN=token)
            params = StdioServerParameters(command=binary, args=["mcp"], env=env)
            async with stdio_client(params) as (read, write):
                out = await session_work(read, write)
        else:
            server, token = sys.argv[2:4]
            client = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
            async with client:
                async with streamable_http_client(f"{server}/api/v1/mcp", http_client=client) as (read, write, *_):
                    out = await session_work(read, write)
    except BaseException as e:  # noqa: BLE001 - the test wants to see any failure
        leaves = [e]
        while any(isinstance(x, BaseExceptionGroup) for x in leaves):
            leaves = [y for x in leaves for y in (x.exceptions if isinstance(x, BaseExceptionGroup) else [x])]
        out = {"error": "; ".join(f"{type(x).__name__}: {x}" for x in leaves)}
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main())
