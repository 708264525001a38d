"""Gazebo simulation: gz-sim with worlds/road_hazards.sdf + ros_gz_bridge + detector_node.

    ros2 launch edge_perception sim.launch.py [gz_args:=-r -s] [params_file:=...]

The world's front camera (1280x720, 70 deg, 1.4 m up, 5 deg down; worlds/README.md) is
bridged to /camera/front/image_raw + camera_info, and /clock (worlds/ros_gz_bridge.yaml).
The detector runs on sim time with config/params.yaml and config/sim.yaml layered on top
(image topic and the camera mount of the world). Drive the vehicle with
`ros2 topic pub -r 10 /ego/cmd_vel geometry_msgs/msg/Twist "{linear: {x: 8.0}}"`; hazard
ground truth is worlds/ground_truth.yaml. Without Gazebo, `edge-perception sim` publishes
rendered frames on the same topics with ground truth on /sim/ground_truth.
Needs gz-sim (Harmonic or newer) and ros_gz_bridge installed.
"""

from launch.actions import (
    DeclareLaunchArgument,
    EmitEvent,
    ExecuteProcess,
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
WORLD = "road_hazards.sdf"
BRIDGE_CONFIG = "ros_gz_bridge.yaml"


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
    params = LaunchConfiguration("params_file")
    sim_params = LaunchConfiguration("sim_params_file")
    world = PathJoinSubstitution([share, "worlds", WORLD])

    gazebo = ExecuteProcess(cmd=["gz", "sim", LaunchConfiguration("gz_args"), world],
                            name="gz_sim", output="screen", shell=True)  # gz_args: "-r -s"
    bridge = Node(package="ros_gz_bridge", executable="parameter_bridge",
                  name="ros_gz_bridge", output="screen",
                  parameters=[{"config_file": PathJoinSubstitution([share, "worlds",
                                                                    BRIDGE_CONFIG]),
                               "use_sim_time": True}])
    detector = LifecycleNode(package=PACKAGE, executable="detector_node", name="detector_node",
                             namespace="", output="screen",
                             parameters=[params, sim_params, {"use_sim_time": True}])

    return LaunchDescription([
        DeclareLaunchArgument("gz_args", default_value="-r",
                              description="gz sim options (-r: run at start, -s: headless)"),
        DeclareLaunchArgument("params_file",
                              default_value=PathJoinSubstitution([share, "config",
                                                                  "params.yaml"]),
                              description="ROS 2 params file for all nodes"),
        DeclareLaunchArgument("sim_params_file",
                              default_value=PathJoinSubstitution([share, "config", "sim.yaml"]),
                              description="simulation overrides, layered over params_file"),
        SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE",
                               EnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE",
                                                   default_value=PathJoinSubstitution(
                                                       [share, "config", "fastdds.xml"]))),
        gazebo,
        bridge,
        detector,
        *_configure_then_activate(detector),
    ])
