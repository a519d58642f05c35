# parc_proto_library(NAME PROTOS a.proto b.proto): generates C++ message and gRPC code from
# protos under ${CMAKE_SOURCE_DIR}/proto and builds them into a library whose include
# directory is SYSTEM (generated code is not held to the project's warning flags). For Windows
# (no gRPC), only the messages library is built, by the host's protoc.
function(parc_proto_library name)
  cmake_parse_arguments(ARG "" "" "PROTOS" ${ARGN})
  set(out_dir ${CMAKE_BINARY_DIR}/gen)
  set(proto_root ${CMAKE_SOURCE_DIR}/proto)
  set(srcs)
  set(message_srcs)
  foreach(proto ${ARG_PROTOS})
    get_filename_component(abs ${proto} ABSOLUTE)
    file(RELATIVE_PATH rel ${proto_root} ${abs})
    string(REGEX REPLACE "\\.proto$" "" base ${rel})
    if(WIN32)
      add_custom_command(
        OUTPUT ${out_dir}/${base}.pb.cc ${out_dir}/${base}.pb.h
        COMMAND ${CMAKE_COMMAND} -E make_directory ${out_dir}
        COMMAND ${PARC_PROTOC} ARGS --proto_path=${proto_root} --cpp_out=${out_dir} ${abs}
        DEPENDS ${abs}
        COMMENT "protoc ${rel}")
      list(APPEND message_srcs ${out_dir}/${base}.pb.cc)
      continue()
    endif()
    set(gen ${out_dir}/${base}.pb.cc ${out_dir}/${base}.pb.h ${out_dir}/${base}.grpc.pb.cc
            ${out_dir}/${base}.grpc.pb.h)
    add_custom_command(
      OUTPUT ${gen}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${out_dir}
      COMMAND protobuf::protoc ARGS --proto_path=${proto_root} --cpp_out=${out_dir}
              --grpc_out=${out_dir} --plugin=protoc-gen-grpc=$<TARGET_FILE:gRPC::grpc_cpp_plugin>
              ${abs}
      DEPENDS ${abs} protobuf::protoc gRPC::grpc_cpp_plugin
      COMMENT "protoc ${rel}")
    list(APPEND message_srcs ${out_dir}/${base}.pb.cc)
    list(APPEND srcs ${out_dir}/${base}.grpc.pb.cc)
  endforeach()
  # The messages alone, without gRPC and without linking protobuf (the small parc-agent links
  # it statically; see agent/CMakeLists.txt).
  add_library(${name}_messages STATIC ${message_srcs})
  target_include_directories(${name}_messages SYSTEM PUBLIC ${out_dir} ${Protobuf_INCLUDE_DIRS})
  target_compile_options(${name}_messages PRIVATE -ffunction-sections -fdata-sections)
  if(WIN32)
    target_link_libraries(${name}_messages PUBLIC protobuf::libprotobuf)
    return()
  endif()
  add_library(${name} STATIC ${srcs})
  target_include_directories(${name} SYSTEM PUBLIC ${out_dir})
  target_link_libraries(${name} PUBLIC ${name}_messages protobuf::libprotobuf gRPC::grpc++)
endfunction()
