"""onemetal: OpenNebula drivers for rented bare metal.

This package is imported both on the frontend (inside a virtualenv, with every
dependency) and on hosts (under /usr/bin/python3 with Debian's packages, from
the copy carried in the remotes tree). Keep module-level imports to the
standard library so a host never pays for, or fails on, a frontend dependency.
"""

__version__ = "0.1.0"
