"""oned's DS MAD (src/datastore_mad/one_datastore.rb), for the lab's oned double.

An action runs on the frontend as oneadmin: remotes/datastore/<ds_mad>/<action> <id>,
its stdin the DS_DRIVER_ACTION_DATA document in base64 exactly as oned sent it to the
MAD (one line, no trailing newline).
"""

from __future__ import annotations

from onemetal.lab.frontend_host import REMOTES
from onemetal.lab.lab import Lab
from onemetal.lab.oned_tm import run_local
from onemetal.lab.samples import b64
from onemetal.run import Result


def ds_action(lab: Lab, action: str, ds_id: int, payload_xml: str, *,
              ds_mad: str = "onemetal") -> Result:
    path = f"{REMOTES}/datastore/{ds_mad}/{action.lower()}"
    return run_local(lab, path, [str(ds_id)], b64(payload_xml))
