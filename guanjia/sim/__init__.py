"""`guanjia sim`: a site simulator and load generator.

`plan` decides what every simulated device sends and when (pure, seeded); `wire` turns a
planned send into contract messages (pure); `credentials` provisions the devices' broker
accounts as `guanjia device add` does; `devices` is one device's MQTT session (paho) with
end-to-end Acks and re-sends; `runner` plays a plan; `gateway_view` reads what the gateway
made of it through the API; `display` draws the live view and the summary; `cli` wires it.
"""
