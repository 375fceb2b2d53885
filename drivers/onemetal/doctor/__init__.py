"""`onemetal doctor`: the whole installation checked as sections of doctor_report.Check.

frontend.py runs on the frontend (the installed remotes, the NAT table vs the store,
then every host over SSH); host.py is the "host-doctor" entry, which runs the host's
sections (remotes, packages, sudoers, mesh and MTU, datastores, libvirt) and returns
them as JSON. Each section is a small module returning its checks (docs/doctor.md).
"""
