# Debian packages with CPack: parc-agent (the device agent), parc-server (the server, with
# parcctl and parc-bundle) and parc-relay (an establishment's caching relay, nginx). `cpack --config CPackConfig.cmake` in the build directory, or
# tools/package.sh, which also checks them.
set(PARC_INSTALLER ${CMAKE_SOURCE_DIR}/installer)
set(PARC_PKG_DOC ${CMAKE_BINARY_DIR}/package-doc)
file(MAKE_DIRECTORY ${PARC_PKG_DOC})

# Compressed changelog and man pages (from --help, with help2man when available).
find_program(GZIP_PROGRAM gzip REQUIRED)
find_program(HELP2MAN_PROGRAM help2man)
add_custom_command(
  OUTPUT ${PARC_PKG_DOC}/changelog.Debian.gz
  COMMAND ${GZIP_PROGRAM} -9n -c ${PARC_INSTALLER}/debian/changelog > ${PARC_PKG_DOC}/changelog.Debian.gz
  DEPENDS ${PARC_INSTALLER}/debian/changelog)
set(PARC_PKG_GENERATED ${PARC_PKG_DOC}/changelog.Debian.gz)

function(parc_man_page target description)
  if(NOT HELP2MAN_PROGRAM)
    return()
  endif()
  set(out ${PARC_PKG_DOC}/${target}.1.gz)
  add_custom_command(
    OUTPUT ${out}
    COMMAND ${HELP2MAN_PROGRAM} --no-info --section=1 --name=${description}
            --help-option=--help-all
            --version-string=${PROJECT_VERSION} $<TARGET_FILE:${target}>
            | ${GZIP_PROGRAM} -9n > ${out}
    DEPENDS ${target}
    COMMENT "man page for ${target}")
  set(PARC_PKG_GENERATED ${PARC_PKG_GENERATED} ${out} PARENT_SCOPE)
endfunction()
parc_man_page(parc-agent "Parc device agent: inventory, enrollment and bundle installs")
parc_man_page(parc-server "Parc server: inventory and provisioning of school devices")
parc_man_page(parcctl "command line of Parc operators")
parc_man_page(parc-bundle "build, sign and verify Parc application bundles")
add_custom_target(package-doc ALL DEPENDS ${PARC_PKG_GENERATED})

# parc-agent
install(TARGETS parc-agent RUNTIME DESTINATION usr/bin COMPONENT agent)
install(TARGETS parc-agent-full parc-agentd RUNTIME DESTINATION usr/lib/parc COMPONENT agent)
install(FILES ${PARC_INSTALLER}/systemd/parc-agent.service DESTINATION lib/systemd/system
        COMPONENT agent)
install(FILES ${PARC_INSTALLER}/config/agent.toml DESTINATION etc/parc COMPONENT agent)
install(FILES ${PARC_INSTALLER}/debian/copyright ${PARC_PKG_DOC}/changelog.Debian.gz
        DESTINATION usr/share/doc/parc-agent COMPONENT agent)
install(FILES ${CMAKE_SOURCE_DIR}/docs/technician-guide.md DESTINATION usr/share/doc/parc-agent
        COMPONENT agent)
# parc-server, parcctl, parc-bundle
install(TARGETS parc-server parcctl parc-bundle RUNTIME DESTINATION usr/bin COMPONENT server)
install(FILES ${PARC_INSTALLER}/systemd/parc-server.service DESTINATION lib/systemd/system
        COMPONENT server)
install(FILES ${PARC_INSTALLER}/config/server.env ${PARC_INSTALLER}/config/parcctl.toml
        DESTINATION etc/parc COMPONENT server)
install(FILES ${PARC_INSTALLER}/debian/copyright ${PARC_PKG_DOC}/changelog.Debian.gz
        ${CMAKE_SOURCE_DIR}/docs/operator-guide.md ${CMAKE_SOURCE_DIR}/docs/data-catalogue.md
        DESTINATION usr/share/doc/parc-server COMPONENT server)
# parc-relay: scripts and an nginx site, no binary (Architecture: all).
set(PARC_RELAY ${CMAKE_SOURCE_DIR}/packaging/relay)
install(PROGRAMS ${PARC_RELAY}/parc-relay-setup DESTINATION usr/sbin COMPONENT relay)
install(PROGRAMS ${PARC_RELAY}/parc-relay-sync DESTINATION usr/bin COMPONENT relay)
install(FILES ${PARC_RELAY}/parc-relay.conf DESTINATION usr/share/parc-relay COMPONENT relay)
install(FILES ${PARC_RELAY}/parc-relay-sync.service ${PARC_RELAY}/parc-relay-sync.timer
        DESTINATION lib/systemd/system COMPONENT relay)
install(FILES ${PARC_RELAY}/sync.env DESTINATION etc/parc-relay COMPONENT relay)
install(FILES ${PARC_INSTALLER}/debian/copyright ${PARC_PKG_DOC}/changelog.Debian.gz
        ${PARC_RELAY}/README.md DESTINATION usr/share/doc/parc-relay COMPONENT relay)
if(HELP2MAN_PROGRAM)
  install(FILES ${PARC_PKG_DOC}/parc-agent.1.gz DESTINATION usr/share/man/man1 COMPONENT agent)
  install(FILES ${PARC_PKG_DOC}/parc-server.1.gz ${PARC_PKG_DOC}/parcctl.1.gz
          ${PARC_PKG_DOC}/parc-bundle.1.gz DESTINATION usr/share/man/man1 COMPONENT server)
endif()

set(CPACK_GENERATOR DEB)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL agent server relay)
set(CPACK_PACKAGING_INSTALL_PREFIX "/")
set(CPACK_PACKAGE_NAME parc)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "Parc maintainers <parc@parc.invalid>")
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "Parc maintainers <parc@parc.invalid>")
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://parc.invalid")

set(CPACK_DEBIAN_AGENT_PACKAGE_NAME parc-agent)
set(CPACK_COMPONENT_AGENT_DESCRIPTION
    "Parc device agent for school laptops, tablets and displays\n\
Reports a privacy-minimal inventory of the device to the Parc server, checks in\n\
on the schedule the server sets, and installs the application bundles signed by\n\
the académies. Put it in a master disk image with a preseeded configuration:\n\
every clone enrolls on its own at first boot.")
set(CPACK_DEBIAN_AGENT_PACKAGE_CONTROL_EXTRA
    "${PARC_INSTALLER}/debian/agent/postinst;${PARC_INSTALLER}/debian/agent/prerm;\
${PARC_INSTALLER}/debian/agent/postrm;${PARC_INSTALLER}/debian/agent/conffiles")

set(CPACK_DEBIAN_SERVER_PACKAGE_NAME parc-server)
set(CPACK_DEBIAN_SERVER_PACKAGE_DEPENDS "adduser")
set(CPACK_COMPONENT_SERVER_DESCRIPTION
    "Parc server for the school device fleet of a region\n\
Tracks the devices of every establishment, rolls the académies' signed\n\
application bundles out in waves, and shows the collectivités their deployment\n\
status in a web dashboard. Includes parcctl, the operators' command line, and\n\
parc-bundle, the publishers' offline tool.")
set(CPACK_DEBIAN_SERVER_PACKAGE_CONTROL_EXTRA
    "${PARC_INSTALLER}/debian/server/postinst;${PARC_INSTALLER}/debian/server/prerm;\
${PARC_INSTALLER}/debian/server/postrm;${PARC_INSTALLER}/debian/server/conffiles")

set(CPACK_DEBIAN_RELAY_PACKAGE_NAME parc-relay)
set(CPACK_DEBIAN_RELAY_PACKAGE_ARCHITECTURE all)
set(CPACK_DEBIAN_RELAY_PACKAGE_SHLIBDEPS OFF)
set(CPACK_DEBIAN_RELAY_PACKAGE_DEPENDS "nginx, curl, openssl")
set(CPACK_COMPONENT_RELAY_DESCRIPTION
    "Parc establishment relay: the annual bundle crosses a school's link once\n\
An nginx site caching the Parc server's content-addressed artifacts on a\n\
school's network, with a timer that prefetches what the school's devices are\n\
assigned before they ask and reports the cache's fill to the server. Devices\n\
verify every artifact: the relay is not trusted and holds no secret.")
set(CPACK_DEBIAN_RELAY_PACKAGE_CONTROL_EXTRA
    "${PARC_INSTALLER}/debian/relay/postinst;${PARC_INSTALLER}/debian/relay/prerm;\
${PARC_INSTALLER}/debian/relay/postrm;${PARC_INSTALLER}/debian/relay/conffiles")
include(CPack)
