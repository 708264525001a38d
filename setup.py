from glob import glob

from setuptools import find_packages, setup

package_name = "edge_perception"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(include=[package_name, f"{package_name}.*"]),
    package_data={package_name: ["py.typed", "learn/data/*.xml.gz"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{package_name}"]),
        (f"share/{package_name}", ["package.xml"]),
        (f"share/{package_name}/launch", glob("launch/*.py")),
        (f"share/{package_name}/config", glob("config/*.yaml") + glob("config/*.xml")),
        (f"share/{package_name}/models", glob("models/*")),
        (f"share/{package_name}/worlds", glob("worlds/*.sdf") + glob("worlds/*.yaml")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="edge_perception maintainers",
    maintainer_email="maintainers@edge-perception.invalid",
    description="Road-hazard perception for vehicles (potholes, speed bumps) on ROS 2",
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            "camera_node = edge_perception.nodes.camera_node:main",
            "detector_node = edge_perception.nodes.detector_node:main",
            "sample_uploader_node = edge_perception.nodes.uploader_node:main",
            "edge-perception = edge_perception.cli:main",
        ],
    },
)
