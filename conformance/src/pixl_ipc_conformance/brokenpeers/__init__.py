"""Deliberately broken peers that prove the conformance cases can fail.

``broken_server`` is a small server written from the spec with one defect on
demand (``--defect NAME``); the ``broken_adapter*`` modules are client
adapters with planted defects. None of them imports the implementations
under test.
"""
