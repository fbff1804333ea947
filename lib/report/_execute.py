"""Execute one notebook with a Jupyter kernel and write its executed copy.

Called by lib/report/run.ts, which renders the HTML and Markdown reports from
the executed copy; not a public entry point.

    python3 _execute.py NOTEBOOK OUT_IPYNB --cwd DIR --kernel deno --timeout 1800

Prints one JSON line on stdout: {"status": "ok"|"failed", "kind": "error"|
"timeout"|"dead"|"fatal"|null, "cell": 0-based index or null, "error": text,
"written": whether the executed copy was written}. The executed copy is
written also when a cell fails (what ran, with its outputs), through a
temporary file and a rename. Exit code 0 on success, 1 when a cell failed, 2
when the notebook could not be run at all (nothing is written then).
"""

import argparse
import asyncio
import json
import os
import queue
import sys
import traceback

# Deno's kernel (seen with 2.9.6) sometimes publishes a cell's execute_result
# just after the cell's "idle" status, about 0.5 ms late, in roughly one cell
# of five. nbclient stops listening at "idle" and would silently drop that
# output, so after "idle" we keep listening to the same cell for this long.
LATE_OUTPUT_GRACE_S = 0.2


def atomic_write(path, text):
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("notebook")
    ap.add_argument("out_ipynb")
    ap.add_argument("--cwd", required=True)
    ap.add_argument("--kernel", default="deno")
    ap.add_argument("--timeout", type=int, default=1800)
    args = ap.parse_args()

    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import (
        CellExecutionComplete,
        CellExecutionError,
        CellTimeoutError,
        DeadKernelError,
    )
    from nbclient.util import ensure_async
    from jupyter_client.kernelspec import NoSuchKernel

    class LateOutputClient(NotebookClient):
        """NotebookClient that also keeps outputs published just after idle."""

        running_cell = None  # index of the cell being executed, for errors

        async def async_execute_cell(self, cell, cell_index, *args, **kwargs):
            self.running_cell = cell_index
            return await super().async_execute_cell(cell, cell_index, *args, **kwargs)

        async def _async_poll_output_msg(self, parent_msg_id, cell, cell_index):
            channel = self.kc.iopub_channel
            has_result = False
            while True:
                msg = await ensure_async(channel.get_msg(timeout=None))
                if msg["parent_header"].get("msg_id") != parent_msg_id:
                    continue
                if msg["msg_type"] == "status" and msg["content"].get("execution_state") == "idle":
                    break
                has_result = has_result or msg["msg_type"] == "execute_result"
                try:
                    self.process_message(msg, cell, cell_index)
                except CellExecutionComplete:
                    break
            if has_result:
                return  # a cell has at most one execute_result: nothing is late
            loop = asyncio.get_running_loop()
            deadline = loop.time() + LATE_OUTPUT_GRACE_S
            while (remaining := deadline - loop.time()) > 0:
                try:
                    msg = await ensure_async(channel.get_msg(timeout=remaining))
                except queue.Empty:
                    return
                if msg["parent_header"].get("msg_id") != parent_msg_id or msg["msg_type"] == "status":
                    continue
                try:
                    self.process_message(msg, cell, cell_index)
                except CellExecutionComplete:
                    pass
                if msg["msg_type"] == "execute_result":
                    return

    nb = nbformat.read(args.notebook, as_version=4)
    workdir = os.path.abspath(args.cwd)
    client = LateOutputClient(
        nb,
        kernel_name=args.kernel,
        timeout=args.timeout,
        resources={"metadata": {"path": workdir}},
    )
    result = {"status": "ok", "kind": None, "cell": None, "error": ""}
    try:
        client.execute()
    except CellTimeoutError as e:
        result.update(status="failed", kind="timeout", error=str(e).strip())
    except DeadKernelError as e:
        result.update(status="failed", kind="dead", error=str(e).strip())
    except CellExecutionError as e:
        result.update(status="failed", kind="error", error=str(e).strip())
    except NoSuchKernel:
        result.update(
            status="failed",
            kind="fatal",
            error=f"no Jupyter kernel named {args.kernel!r} is installed: run `deno task setup` (it installs the Deno kernelspec)",
        )
    except Exception as e:  # the kernel could not start: nothing executed
        result.update(status="failed", kind="fatal", error=f"{type(e).__name__}: {e}")
    if result["kind"] == "fatal":
        print(json.dumps(result), flush=True)
        return 2

    if result["status"] == "failed":
        # The failing cell is the first code cell with an error output, or the
        # first one the client did not reach.
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            errs = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
            if errs:
                result["cell"] = i
                e = errs[0]
                result["error"] = f"{e.get('ename', 'Error')}: {e.get('evalue', '')}".strip()
                break
        if result["cell"] is None and client.running_cell is not None:
            # A time-out or a dead kernel leaves no error output on the cell.
            result["cell"] = client.running_cell

    atomic_write(args.out_ipynb, nbformat.writes(nb))
    result["written"] = True
    print(json.dumps(result), flush=True)
    return 0 if result["status"] == "ok" else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:
        print(json.dumps({"status": "failed", "kind": "fatal", "cell": None, "error": traceback.format_exc()}))
        sys.exit(2)
