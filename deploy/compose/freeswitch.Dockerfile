# FreeSWITCH with tongdai's configuration. FREESWITCH_IMAGE: any FreeSWITCH 1.10+ image
# with the vanilla modules and fs_cli (e.g. built from the signalwire/freeswitch packages).
ARG FREESWITCH_IMAGE
FROM ${FREESWITCH_IMAGE}
COPY fs-conf /opt/tongdai/fs-conf
ENTRYPOINT ["/opt/tongdai/fs-conf/bin/tongdai-freeswitch"]
