"""Replay tools: rosbag2 reading and writing (rosbags, no rclpy), playback pacing and sync."""
