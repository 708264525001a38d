"""Bag replay: `edge-perception bag play BAG --clock` + detector_node on bag time.

    ros2 launch edge_perception replay.launch.py bag:=/path/to/bag [rate:=0.5]
        [params_file:=...] [replay_params_file:=...]

The detector runs with use_sim_time (the player publishes /clock from the bag's timestamps),
configured by config/params.yaml with config/replay.yaml layered on top (image topic of the
bags `edge-perception bag record` writes). The player first waits for the detector to
subscribe; the launch ends when the bag has been played. For CI-style replays where every
frame must be processed, use `edge-perception bag play --deterministic` or
`edge-perception bag eval` instead (ros2 bag play cannot promise that, rosbag2#1254).
"""

from launch.actions import (
    DeclareLaunchArgument,
    EmitEvent,
    ExecuteProcess,
    RegisterEventHandler,
    SetEnvironmentVariable,
)
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown, matches_action
from launch.substitutions import EnvironmentVariable, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode
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
    params = LaunchConfiguration("params_file")
    replay_params = LaunchConfiguration("replay_params_file")

    detector = LifecycleNode(package=PACKAGE, executable="detector_node", name="detector_node",
                             namespace="", output="screen",
                             parameters=[params, replay_params, {"use_sim_time": True}])
    player = ExecuteProcess(
        cmd=["edge-perception", "bag", "play", LaunchConfiguration("bag"), "--clock",
             "--rate", LaunchConfiguration("rate"), "--wait-for-subscribers", "60"],
        name="bag_play", output="screen")

    return LaunchDescription([
        DeclareLaunchArgument("bag", description="rosbag2 folder (or .mcap/.db3 file)"),
        DeclareLaunchArgument("rate", default_value="1.0", description="playback speed"),
        DeclareLaunchArgument("params_file",
                              default_value=PathJoinSubstitution([share, "config",
                                                                  "params.yaml"]),
                              description="ROS 2 params file for all nodes"),
        DeclareLaunchArgument("replay_params_file",
                              default_value=PathJoinSubstitution([share, "config",
                                                                  "replay.yaml"]),
                              description="replay overrides, layered over params_file"),
        SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE",
                               EnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE",
                                                   default_value=PathJoinSubstitution(
                                                       [share, "config", "fastdds.xml"]))),
        detector,
        *_configure_then_activate(detector),
        player,
        RegisterEventHandler(OnProcessExit(target_action=player,
                                           on_exit=[EmitEvent(event=Shutdown(
                                               reason="bag played"))])),
    ])
