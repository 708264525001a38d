"""ROS 2 nodes (one per module) and the small ROS-side helpers they share: parameter specs,
QoS profiles, message conversion and diagnostics. Only this subpackage imports rclpy."""
