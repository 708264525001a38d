"""Vehicle bring-up: camera → detector → sample uploader, configured by config/params.yaml.

    ros2 launch edge_perception vehicle.launch.py [params_file:=/path/params.yaml]

The same params file drives `edge-perception run` (one process, no ros2 launch needed).
camera_node and sample_uploader_node are plain nodes; detector_node is a lifecycle node, so
this file drives it to configured, then active. FASTDDS_DEFAULT_PROFILES_FILE points at the
installed config/fastdds.xml (shared memory, 32 MB segments) unless already set.
"""

from launch.actions import (
    DeclareLaunchArgument,
    EmitEvent,
    RegisterEventHandler,
    SetEnvironmentVariable,
)
from launch.events import matches_action
from launch.substitutions import EnvironmentVariable, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from launch_ros.substitutions import FindPackageShare
from lifecycle_msgs.msg import Transition

from launch import LaunchDescription

PACKAGE = "edge_perception"


def _configure_then_activate(node):
    """Configure `node` at start, activate it once it reaches 'inactive'."""
    configure = EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                            transition_id=Transition.TRANSITION_CONFIGURE))
    activate = RegisterEventHandler(OnStateTransition(
        target_lifecycle_node=node, goal_state="inactive",
        entities=[EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                              transition_id=Transition.TRANSITION_ACTIVATE))]))
    return [activate, configure]


def generate_launch_description():
    share = FindPackageShare(PACKAGE)
    default_params = PathJoinSubstitution([share, "config", "params.yaml"])
    fastdds_profile = PathJoinSubstitution([share, "config", "fastdds.xml"])
    params = LaunchConfiguration("params_file")

    camera = Node(package=PACKAGE, executable="camera_node", name="camera_node",
                  parameters=[params], output="screen")
    detector = LifecycleNode(package=PACKAGE, executable="detector_node", name="detector_node",
                             namespace="", parameters=[params], output="screen")
    uploader = Node(package=PACKAGE, executable="sample_uploader_node",
                    name="sample_uploader_node", parameters=[params], output="screen")

    return LaunchDescription([
        DeclareLaunchArgument("params_file", default_value=default_params,
                              description="ROS 2 params file for all nodes"),
        SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE",
                               EnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE",
                                                   default_value=fastdds_profile)),
        camera,
        detector,
        uploader,
        *_configure_then_activate(detector),
    ])
