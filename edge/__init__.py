"""The edge node: camera capture, motion gate, ONNX detector, tracker, zone rules, uplink.

Runs on Raspberry-Pi-class hardware. Imports the contract; never imports the gateway.
"""
