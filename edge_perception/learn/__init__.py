"""Learning loop on the car and in the cloud: select frames, blur private regions, keep them in a
durable store, upload them in batches, and turn ingested batches back into training data.

Nothing here imports rclpy or message packages; nodes/uploader_node.py converts messages.
"""
