"""OpenNebula's calling convention: what oned hands a driver, and how a driver answers.

- payload: base64 / XML decoding with a hardened parser
- values:  checks for values that could reach a command line or a path
- views:   typed, read-only views of VM, NIC, Host, Datastore, Image
- protocol: the stderr/exit-code protocol oned 6.x and 7.x read
"""
