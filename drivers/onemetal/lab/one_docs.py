"""OpenNebula-shaped documents for the demo and the oned double, all from one VM description.

Every document oned writes for a VM, a datastore or an image, built by pure functions that
follow the oned source writing it (each module says which):
- one_vm: OneVm, OneDisk, OneNet; vm_xml (one.vm.info, vm.xml), vnm_payload, context_sh;
- one_deployment: deployment (deployment.0), vmm_action_data, transfer_prolog, transfer_epilog;
- one_datastore: OneImage, ds_xml, ds_action_data;
- one_api.write_api_vm: the VM where the API stand-in answers one.vm.info.
"""

from __future__ import annotations

from onemetal.lab.one_api import write_api_vm
from onemetal.lab.one_datastore import OneImage, ds_action_data, ds_xml, image_xml
from onemetal.lab.one_deployment import (deployment, transfer_epilog, transfer_prolog,
                                         vmm_action_data)
from onemetal.lab.one_vm import (OneDisk, OneNet, OneVm, context_sh, context_values, vm_xml,
                                 vnm_payload)

__all__ = ["OneDisk", "OneImage", "OneNet", "OneVm", "context_sh", "context_values",
           "deployment", "ds_action_data", "ds_xml", "image_xml", "transfer_epilog",
           "transfer_prolog", "vm_xml", "vmm_action_data", "vnm_payload", "write_api_vm"]
